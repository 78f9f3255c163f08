"""Measurement on real kernels: kernel builds, the initramfs, the VM run and its trace."""
