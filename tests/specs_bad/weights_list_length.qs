space s
qubits 3
depth 3
layer = choose { ry(q, theta[layer, q]) for q in all | rx(q, theta[layer, q]) for q in all }
weights raw init [0.5, 0.3, 0.2]
