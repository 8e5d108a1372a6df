space s
qubits 3
depth 2
layer = ry(n, theta[layer, n]) for n in all
