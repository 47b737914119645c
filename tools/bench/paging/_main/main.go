// Temporary driver for local runs until tools/bench/main.go dispatches
// "paging"; not part of the deliverable.
package main

import (
	"fmt"
	"os"

	"github.com/continuum-mesh/continuum/tools/bench/paging"
)

func main() {
	if err := paging.Run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
