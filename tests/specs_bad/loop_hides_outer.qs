space s
qubits 3
depth 3
layer = cz(i, j) for i in all for i in all
