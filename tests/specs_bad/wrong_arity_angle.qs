space s
qubits 3
depth 2
layer = ry(q) for q in all
