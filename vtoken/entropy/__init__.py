"""Entropy coding of LFQ bit-planes: an integer context model driving constriction's range coder.

    coder = coder_for(model)                  # BitplaneCoder(bits, prior, cross-plane predictor)
    segments = coder.encode(chunk_bits)       # one bytes object per plane; state untouched
    coder.commit(chunk_bits, planes=len(kept)) # state as the decoder will see it
    ...
    decoder = coder_for(model)
    bits = decoder.decode(segments, (T, H, W))

Modules: contexts (features of a bit), crossplane (what earlier planes at a position predict), model (integer adaptive counts and fixed-point
probabilities), walk (coding order), coder (BitplaneCoder), prior (fit_prior, estimate_bits).
"""

from .coder import FORMAT_VERSION, SUPPORTED_VERSIONS, BitplaneCoder, coder_for, decodable_versions, format_version
from .contexts import N_CONTEXTS
from .crossplane import CrossPlanePredictor, fit_crossplane
from .prior import estimate_bits, fit_prior

__all__ = ["BitplaneCoder", "coder_for", "fit_prior", "fit_crossplane", "estimate_bits", "CrossPlanePredictor",
           "FORMAT_VERSION", "SUPPORTED_VERSIONS", "decodable_versions", "format_version", "N_CONTEXTS"]
