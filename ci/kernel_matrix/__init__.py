"""The kernel matrix runner behind ci/matrix (see ci/README.md).

kernels: which Debian kernel packages, fetched into the cache; initramfs: what the guest boots;
guest: one qemu boot and how it ended; resume: continuing a run whose guest kernel panicked;
cli: the command line and the run over all kernels.
"""
