"""What master and volumes share at the HTTP edge: the envelope, errors, signatures, serving."""
