// Command eventsbench runs the events-vs-NATS benchmarks of
// tools/bench/events and prints a Markdown report.
package main

import (
	"fmt"
	"os"

	events "github.com/continuum-mesh/continuum/tools/bench/events"
)

func main() {
	if err := events.Run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "eventsbench:", err)
		os.Exit(1)
	}
}
