"""Entropy coding of LFQ bit-planes: an integer context model driving constriction's range coder.

    coder = BitplaneCoder(bits=18, prior=model.entropy_prior)
    segments = coder.encode(chunk_bits)       # one bytes object per plane; state untouched
    coder.commit(chunk_bits, planes=len(kept)) # state as the decoder will see it
    ...
    decoder = BitplaneCoder(bits=18, prior=model.entropy_prior)
    bits = decoder.decode(segments, (T, H, W))

Modules: contexts (features of a bit), model (integer adaptive counts and fixed-point
probabilities), walk (coding order), coder (BitplaneCoder), prior (fit_prior, estimate_bits).
"""

from .coder import FORMAT_VERSION, BitplaneCoder
from .contexts import N_CONTEXTS
from .prior import estimate_bits, fit_prior

__all__ = ["BitplaneCoder", "fit_prior", "estimate_bits", "FORMAT_VERSION", "N_CONTEXTS"]
