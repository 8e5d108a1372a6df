# Every form of the space language in one space (its golden output pins how each compiles):
# independent angles per gate (a third index: theta has shape (L, n, 3) here), scaled,
# negated and shifted trainable angles, a descending range, nested loops with an 'if'
# filter, 'all step 2', a named choice, 'layer' inside a pattern, per-candidate weights.
space every_form
qubits 4
depth 2

pattern down  = cnot(q, q - 1) for q in n - 1 .. 1                  # q = n-1, ..., 1
pattern pairs = cz(i, j) for i in all for j in all if i < j and (j - i) % 2 == 1
pattern rot   = ry(q, 2 * theta[layer, q, 0]) for q in all ;
                rz(q, -theta[layer, q, 1] + pi / 2) for q in all
pattern ent   = choose { down | pairs | E: cnot(q, q + 1) for q in all step 2 if q < n - 1 }

init  = choose { H: h(q) for q in all | none: nothing }
layer = rot ; ent ; rx(q, theta[layer, q, 2] / 3 - 0.25) for q in 0 .. n - 1 step 3
tie layers
weights raw init [0.1, 0.2, 0.3, 0.1, 0.2, 0.1]   # one per candidate, in 'qtc compile' order
angles normal(0, 0.5)
