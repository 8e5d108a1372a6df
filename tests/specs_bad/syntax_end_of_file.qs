space s
qubits 3
depth 2
layer = choose { rx(q, theta[layer, q]) for q in all |
