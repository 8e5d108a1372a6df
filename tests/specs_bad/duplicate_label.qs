space s
qubits 3
depth 2
layer = choose { R: rx(q, theta[layer, q]) for q in all
               | R: ry(q, theta[layer, q]) for q in all }
