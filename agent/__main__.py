"""`python -m agent`: the node agent (see agent.main)."""

from agent.main import main

main()
