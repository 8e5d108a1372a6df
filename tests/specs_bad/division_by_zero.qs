space s
qubits 3
depth 2
layer = ry(q, theta[layer, q]) for q in all ; cnot(0, n // (n - 3))
