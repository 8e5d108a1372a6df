space s
qubits 3
depth 2
layer = ry(theta[layer, q], q) for q in all
