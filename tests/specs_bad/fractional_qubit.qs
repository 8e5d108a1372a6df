space s
qubits 4
depth 2
layer = ry(q, theta[layer, q]) for q in all ; h(q / 2) for q in all
