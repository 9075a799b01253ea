//go:build !cgo

package main

import "os"

// Without cgo there is no pre-runtime constructor; open-tun then re-executes
// itself through util-linux nsenter(1) (single-threaded C), see tunopen.go.
const cgoNsenter = false

// nsEntered: set by the nsenter(1) re-exec in reexecInNS.
func nsEntered() bool { return os.Getenv("_KSI_WG_NSENTER_DONE") == "1" }
