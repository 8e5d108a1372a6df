space s
qubits 3
depth 3
layer = ry(q, theta[layer, q]) for q in n - 1 .. 0 step 1
