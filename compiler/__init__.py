"""The compiler: a search space -> a checked, optimised program of circuits -> rendered C/CUDA kernels."""
