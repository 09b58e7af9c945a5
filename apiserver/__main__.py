from apiserver.server import main

main()
