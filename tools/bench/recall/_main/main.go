// Temporary driver for local runs until tools/bench/main.go dispatches
// "recall" and "recall-gen"; not part of the deliverable.
package main

import (
	"fmt"
	"os"

	"github.com/continuum-mesh/continuum/tools/bench/recall"
	"github.com/continuum-mesh/continuum/tools/bench/recallgen"
)

func main() {
	run := recall.Run
	if len(os.Args) > 1 && os.Args[1] == "recall-gen" {
		run = recallgen.Run
	}
	if err := run(os.Args[2:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
