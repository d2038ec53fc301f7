"""Shared by logits.py and bench.py (development only): opens a llama_cpp.Llama with or without
llama.cpp's extra CPU weight buffer types.

llama_model_params.use_extra_bufts (default true) lets llama.cpp move weights into the AMX buffer
(Intel AMX CPUs, quantized weights: Q4_0, Q4_1, Q8_0, K-quants) or the CPU_REPACK buffer (interleaved
Q4_0/IQ4_NL/... layouts for AVX2/AVX-512/NEON). llama-cpp-python 0.3.36 has no constructor argument for
it, so it is set here in the default model parameters Llama.__init__ starts from.

Why it matters: in llama-cpp-python 0.3.36 built with GGML_NATIVE=ON on an AMX machine, the first
matrix product of a batch of more than one token on quantized weights crashes (SIGSEGV at `ldtilecfg` in
ggml_backend_amx_mul_mat; llama.cpp issue #20824, PR #26954). use_extra_bufts = False avoids it, at
the price of the repacked kernels too.
"""
import contextlib


@contextlib.contextmanager
def _extra_bufts(enabled):
    import llama_cpp.llama as llama_module

    lib = llama_module.llama_cpp  # the ctypes module Llama.__init__ calls
    original = lib.llama_model_default_params

    def params():
        p = original()
        p.use_extra_bufts = bool(enabled)
        return p

    lib.llama_model_default_params = params
    try:
        yield
    finally:
        lib.llama_model_default_params = original


def open_llama(path, extra_bufts=True, **kwargs):
    """llama_cpp.Llama(path, **kwargs) with llama_model_params.use_extra_bufts = extra_bufts."""
    from llama_cpp import Llama

    with _extra_bufts(extra_bufts):
        return Llama(path, **kwargs)
