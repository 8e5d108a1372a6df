space s
qubits 3
depth 1
layer = ry(q, theta[layer, q]) for q in all ;
        cz(q, (q + 3) % n) for q in all
