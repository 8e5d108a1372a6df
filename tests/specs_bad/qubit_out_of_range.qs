space s
qubits 4
depth 2
pattern ladder = cnot(q, q + 1) for q in 0 .. n - 1
layer = ladder ; ry(q, theta[layer, q]) for q in all
