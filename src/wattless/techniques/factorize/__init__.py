"""Low-rank factorization: a layer replaced by a few smaller ones (SVD for Linear, Tucker-2 and CP for Conv2d),
recorded as structural edits so the factorized model loads from its file."""
