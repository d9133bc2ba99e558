"""A strict fake of cuda-python's runtime bindings, on host memory, built from the extracted name list.

Only functions named in ``tests/fixtures/tensorrt/cuda-bindings-*.txt`` exist,
each called with exactly its listed number of positional parameters. Device
memory is host memory whose bounds are checked on every copy and kernel write
(a write past an allocation raises :class:`OutOfBounds` instead of corrupting
memory); streams run work at once unless they are capturing a graph, in which
case it is recorded and replayed by ``cudaGraphLaunch``. The fake counts what
is alive, so tests can assert that a runner frees everything.
"""
import ctypes
import threading

import numpy as np

from tests.fake_api import LISTS, ApiList, EnumValue

#: the integer values of the few error codes the fake returns (names checked against the list)
ERRORS = {"cudaSuccess": 0, "cudaErrorInvalidValue": 1, "cudaErrorInsufficientDriver": 35,
          "cudaErrorStreamCaptureUnsupported": 900, "cudaErrorStreamCaptureInvalidated": 901}


class OutOfBounds(Exception):
    """A copy or a kernel touched memory outside every allocation: on a GPU, silent corruption."""


class Handle:
    """A stream, graph or graph exec: an opaque object that converts to an integer handle."""

    _next = 1

    def __init__(self, kind):
        self.kind, self.handle = kind, Handle._next
        Handle._next += 1

    def __int__(self):
        return self.handle

    def __repr__(self):
        return f"<{self.kind} {self.handle}>"


class FakeCudart:
    """Stands for ``cuda.bindings.runtime``; see the module docstring."""

    def __init__(self, list_name="cuda-bindings-12.9.4.txt", driver_error=None, fail_capture=None,
                 gpu_name=b"NVIDIA Jetson AGX Orin", compute_capability=(8, 7), driver_version=12060):
        self._api = ApiList(LISTS / list_name)
        self._driver_error, self._fail_capture = driver_error, fail_capture
        self._gpu_name, self._cc, self._driver_version = gpu_name, compute_capability, driver_version
        self._blocks = {}          # base address -> (kind, uint8 array)
        self._streams = {}         # handle -> {"capture": None or list, "mode": ...}
        self._graphs, self._execs = {}, {}
        self.capture_modes = []    # the modes cudaStreamBeginCapture was called with
        self.instantiate_flags = []
        self.device = None
        for enum in ("cudaMemcpyKind", "cudaStreamCaptureMode", "cudaGraphInstantiateFlags"):
            members = [v for v in self._api.values.get(enum, ())]
            object.__setattr__(self, enum, type(enum, (), {m: EnumValue(enum, m, i) for i, m in enumerate(members)}))
        missing = [e for e in ERRORS if e not in self._api.values.get("cudaError_t", ())]
        assert not missing, f"{list_name} lacks {missing}"

    # ---------------------------------------------------------------- strictness

    def __getattribute__(self, name):
        if name.startswith("_") or not name.startswith("cuda") or name in ("cudaMemcpyKind", "cudaStreamCaptureMode",
                                                                           "cudaGraphInstantiateFlags"):
            return object.__getattribute__(self, name)
        api = object.__getattribute__(self, "_api")
        if name not in api.functions:
            raise AttributeError(f"module 'cuda.bindings.runtime' has no attribute '{name}' ({api.path.name})")
        try:
            fn = object.__getattribute__(self, "_" + name)
        except AttributeError:
            raise NotImplementedError(f"the fake does not implement {name}") from None
        params = api.functions[name]

        def call(*args):
            if len(args) != len(params):
                raise TypeError(f"{name}() takes {len(params)} positional arguments {list(params)}, got {len(args)}")
            if self._driver_error is not None:
                return self._error(self._driver_error), None
            return fn(*args)
        return call

    def _error(self, name):
        return EnumValue("cudaError_t", name, ERRORS[name])

    def _ok(self, *values):
        return (self._error("cudaSuccess"),) + values

    # ---------------------------------------------------------------- memory

    def memory(self, ptr, nbytes, kind=None):
        """A uint8 view of ``[ptr, ptr + nbytes)`` inside one allocation (of ``kind``), else OutOfBounds."""
        ptr = int(ptr)
        for base, (k, block) in self._blocks.items():
            if base <= ptr < base + block.nbytes:
                if ptr + nbytes > base + block.nbytes:
                    raise OutOfBounds(f"{nbytes} bytes at {ptr:#x} run {ptr + nbytes - base - block.nbytes} bytes "
                                      f"past a {block.nbytes}-byte {k} allocation")
                if kind is not None and k != kind:
                    raise OutOfBounds(f"{ptr:#x} is {k} memory, not {kind}")
                return block[ptr - base:ptr - base + nbytes]
        raise OutOfBounds(f"{ptr:#x} lies in no allocation")

    def host_memory(self, ptr, nbytes):
        """Pinned memory from cudaMallocHost (bounds checked), else pageable host memory (numpy's own)."""
        if any(base <= int(ptr) < base + block.nbytes for base, (_, block) in self._blocks.items()):
            return self.memory(ptr, nbytes, "host")
        return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(int(ptr)))

    def _alloc(self, kind, nbytes):
        block = np.zeros(max(int(nbytes), 1), np.uint8)
        self._blocks[block.ctypes.data] = (kind, block)
        return self._ok(block.ctypes.data)

    def _free(self, kind, ptr):
        entry = self._blocks.get(int(ptr))
        if entry is None or entry[0] != kind:
            return (self._error("cudaErrorInvalidValue"),)
        del self._blocks[int(ptr)]
        return self._ok()

    def _cudaMalloc(self, size):
        return self._alloc("device", size)

    def _cudaMallocHost(self, size):
        return self._alloc("host", size)

    def _cudaFree(self, ptr):
        return self._free("device", ptr)

    def _cudaFreeHost(self, ptr):
        return self._free("host", ptr)

    def _copy(self, dst, src, count, kind):
        directions = {"cudaMemcpyHostToDevice": ("device", "host"), "cudaMemcpyDeviceToHost": ("host", "device"),
                      "cudaMemcpyDeviceToDevice": ("device", "device")}
        dst_kind, src_kind = directions[kind.name]
        view = lambda ptr, k: self.host_memory(ptr, count) if k == "host" else self.memory(ptr, count, k)  # noqa: E731
        view(dst, dst_kind)[:] = view(src, src_kind)

    def _cudaMemcpy(self, dst, src, count, kind):
        self._copy(dst, src, count, kind)
        return self._ok()

    def _cudaMemcpyAsync(self, dst, src, count, kind, stream):
        self.enqueue(stream, lambda: self._copy(dst, src, count, kind))
        return self._ok()

    # ---------------------------------------------------------------- streams and graphs

    def enqueue(self, stream, work):
        """Run ``work`` on ``stream`` now, or record it while the stream captures a graph."""
        state = self._streams[int(stream)]
        if state["capture"] is not None:
            state["capture"].append(work)
        else:
            work()

    def capturing(self, stream):
        return self._streams[int(stream)]["capture"] is not None

    def _cudaStreamCreate(self):
        stream = Handle("cudaStream_t")
        self._streams[int(stream)] = {"capture": None, "thread": None}
        return self._ok(stream)

    def _cudaStreamDestroy(self, stream):
        return self._ok() if self._streams.pop(int(stream), None) else (self._error("cudaErrorInvalidValue"),)

    def _cudaStreamSynchronize(self, stream):
        return self._ok()

    def _cudaStreamBeginCapture(self, stream, mode):
        self.capture_modes.append(mode.name)
        if self._fail_capture == "begin":
            return (self._error("cudaErrorStreamCaptureUnsupported"),)
        self._streams[int(stream)].update(capture=[], thread=threading.get_ident())
        return self._ok()

    def _cudaStreamEndCapture(self, stream):
        state = self._streams[int(stream)]
        work, state["capture"] = state["capture"], None
        if self._fail_capture == "end":
            return self._error("cudaErrorStreamCaptureInvalidated"), None
        graph = Handle("cudaGraph_t")
        self._graphs[int(graph)] = work
        return self._ok(graph)

    def _cudaGraphInstantiate(self, graph, flags):
        self.instantiate_flags.append(int(flags))
        graph_exec = Handle("cudaGraphExec_t")
        self._execs[int(graph_exec)] = list(self._graphs[int(graph)])
        return self._ok(graph_exec)

    def _cudaGraphDestroy(self, graph):
        return self._ok() if self._graphs.pop(int(graph), None) is not None else (self._error("cudaErrorInvalidValue"),)

    def _cudaGraphExecDestroy(self, graph_exec):
        return self._ok() if self._execs.pop(int(graph_exec), None) is not None else \
            (self._error("cudaErrorInvalidValue"),)

    def _cudaGraphLaunch(self, graph_exec, stream):
        for work in self._execs[int(graph_exec)]:
            self.enqueue(stream, work)
        return self._ok()

    # ---------------------------------------------------------------- device

    def _cudaSetDevice(self, device):
        self.device = device
        return self._ok()

    def _cudaGetDeviceCount(self):
        return self._ok(1)

    def _cudaDriverGetVersion(self):
        return self._ok(self._driver_version)

    def _cudaGetDeviceProperties(self, device):
        props = type("cudaDeviceProp", (), {"name": self._gpu_name, "major": self._cc[0], "minor": self._cc[1]})
        return self._ok(props())

    @property
    def alive(self):
        """What is still allocated: ``{"device": n, "host": n, "streams": n, "graphs": n, "execs": n}``."""
        kinds = [k for k, _ in self._blocks.values()]
        return {"device": kinds.count("device"), "host": kinds.count("host"), "streams": len(self._streams),
                "graphs": len(self._graphs), "execs": len(self._execs)}


def as_array(cudart, ptr, shape, dtype):
    """A numpy view of a fake allocation (bounds checked)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return cudart.memory(ptr, n).view(dtype).reshape(shape)

