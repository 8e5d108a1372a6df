space s
qubits 3
depth 2
layer = choose { rxx(q, theta[layer, q]) for q in all | ry(q, theta[layer, q]) for q in all }
