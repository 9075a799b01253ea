//go:build !cgo

package nsenter

import "os"

// Without cgo there is no pre-runtime constructor; Command then re-executes
// through util-linux nsenter(1) (single-threaded C).
const Cgo = false

// Entered: set by the nsenter(1) re-exec in Command.
func Entered() bool { return os.Getenv(doneEnv) == "1" }
