"""The unencrypted mesh for trusted cluster networks: `ksi-wg plain` (whole GSO super-packets over UDP)."""
