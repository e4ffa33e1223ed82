package main

import (
	"fmt"
	"io"
)

// runScale runs the scale experiment. Not written yet: it reports so and
// exits with status 2.
func runScale(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "skyexp: the scale experiment is not written yet")
	return 2
}
