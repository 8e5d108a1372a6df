# Fixed gates and constant angles: a layer is a phase gate (S or T) on every qubit, a
# mirror of SWAPs, then a fixed RX(pi/4), a trainable RY or a Pauli Z on every qubit, then a
# CZ chain: 2 x 2 x 3 = 12 candidates. The all-Clifford ones fold into exact constants.
space clifford_t
qubits 5
depth 3

pattern mirror = swap(q, n - 1 - q) for q in 0 .. n // 2 - 1 step 1   # reverse the qubit order
pattern plus   = h(q) for q in all

init  = choose { plus | X: x(q) for q in 0 .. n - 1 step 2 }   # |+...+> or |10101>
layer = choose { S: s(q) for q in all | T: t(q) for q in all } ;
        mirror ;
        choose { RX4: rx(q, pi / 4) for q in all
               | RY: ry(q, theta[layer, q]) for q in all
               | z(q) for q in all } ;
        cz(q, q + 1) for q in 0 .. n - 2 step 1     # (step 1: empty at n = 1)
tie layers
angles zeros
