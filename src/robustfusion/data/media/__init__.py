"""Media decoding and feature front ends: WAV audio and spectrograms, images and their transforms,
video frames (PyAV), log-mel filterbanks, and speech synthesis with espeak-ng."""
