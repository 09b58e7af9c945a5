"""nftables in-process through libnftables, one persistent context per network namespace.

Spawning `ip netns exec NS nft -f -` per sync costs two process starts (tens of ms on a
busy node) before nft does any work; libnftables (libnftables.so.1, which the nft binary
itself links) takes the same script text in-process. A netlink socket belongs to the
namespace it is opened in and `setns` moves only the calling thread, so every `Nft`
owns one thread that enters the target namespace first and opens the context there;
every call is handed to that thread. `close()` ends the thread, which releases its
hold on the namespace (a deleted namespace lives on while a thread is inside it).

What a persistent context cannot save (nft 1.0.6): libnftables reloads its cache
whenever the ruleset generation changed since its last command (every commit changes
it), and `add rule`, `add element` and every `delete` need all chains of the namespace
in that cache: a dump proportional to the table. agent.proxy.nftables writes rules and
elements in forms that need only the table.
"""

import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor

_CLONE_NEWNET = 0x40000000
_OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON

_lib = ctypes.CDLL("libnftables.so.1")
_lib.nft_ctx_new.restype = ctypes.c_void_p
_lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
_lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
_lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
_lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
_lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
_lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
_lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
_lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
_lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
_lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
_libc = ctypes.CDLL(None, use_errno=True)


class NftError(RuntimeError):
    """nft refused the commands (nothing of them was applied: each run is one transaction)."""


def _enter(netns: str) -> None:
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {netns}")
    finally:
        os.close(fd)


class Nft:
    """A libnftables context inside `netns` (None: the current namespace)."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"nft-{netns or 'self'}")
        self._lock = threading.Lock()
        try:
            self._ctx: int | None = self._thread.submit(self._open).result()
        except BaseException:
            self._thread.shutdown(wait=True)
            raise

    def _open(self) -> int:
        if self.netns:
            _enter(self.netns)
        ctx = _lib.nft_ctx_new(0)
        if not ctx:
            raise NftError("nft_ctx_new failed")
        _lib.nft_ctx_buffer_output(ctx)
        _lib.nft_ctx_buffer_error(ctx)
        return int(ctx)

    def _run(self, text: str, json: bool) -> str:
        assert self._ctx is not None, "Nft used after close()"
        _lib.nft_ctx_output_set_flags(self._ctx, _OUTPUT_JSON if json else 0)
        status = _lib.nft_run_cmd_from_buffer(self._ctx, text.encode())
        # reading a buffer also rewinds it for the next command
        output = (_lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()
        errors = (_lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode()
        if status:
            raise NftError(f"nft in {self.netns or 'this namespace'}: {errors.strip()}")
        return output

    def run(self, text: str, json: bool = False) -> str:
        """Run an nft script (one transaction); its output (JSON when asked)."""
        with self._lock:
            return self._thread.submit(self._run, text, json).result()

    def close(self) -> None:
        with self._lock:
            if self._ctx is not None:
                self._thread.submit(_lib.nft_ctx_free, self._ctx).result()
                self._ctx = None
            self._thread.shutdown(wait=True)
