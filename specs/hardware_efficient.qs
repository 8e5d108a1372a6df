# A hardware-efficient ansatz: rotations about one axis, then a ring of CZ gates (the
# nearest-neighbour native two-qubit gate of many devices). 2 x 2 = 4 candidates.
# Compared with hadamard_ent_rot: a CZ ring instead of CNOTs, the rotation *before* the
# entangler, two rotation axes, and softmax-normalised structural weights.
space hardware_efficient
qubits auto 8               # sized by the task; 8 when compiled alone
depth 4

# CZ(q, q+1) for every neighbouring pair, wrapping around (n >= 3)
pattern ring = cz(q, (q + 1) % n) for q in 0 .. n - 1

init  = choose { H: h(q) for q in all | none: nothing }
layer = choose { RY: ry(q, theta[layer, q]) for q in all
               | RX: rx(q, theta[layer, q]) for q in all } ;
        ring
tie layers
weights softmax init 0      # w = softmax(0, 0, 0, 0) = 1/4 each at the start
angles uniform(-pi, pi)
