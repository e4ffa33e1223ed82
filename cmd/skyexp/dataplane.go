package main

import (
	"fmt"
	"io"
)

// runDataplane runs the dataplane experiment. Not written yet: it reports so and
// exits with status 2.
func runDataplane(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "skyexp: the dataplane experiment is not written yet")
	return 2
}
