package main

import (
	"errors"
	"testing"
)

// Each round runs every participant once, and no participant follows the same one in most
// rounds: the kernel's clean-up after the previous run slows the next, so a fixed
// predecessor would bias one participant's figure (with the order rotated each round,
// participant 2 of 5 followed participant 1 in four rounds of five).
func TestInterleavePredecessors(t *testing.T) {
	const n, rounds = 5, 200
	var sequence []int
	fns := make([]func() ([]float64, error), n)
	for i := range fns {
		fns[i] = func() ([]float64, error) {
			sequence = append(sequence, i)
			return []float64{float64(i)}, nil
		}
	}
	samples, errs := interleave(rounds, fns...)
	for i := range fns {
		if errs[i] != nil || len(samples[i]) != rounds {
			t.Fatalf("participant %d: %d samples, error %v; want %d", i, len(samples[i]), errs[i], rounds)
		}
	}
	var follows [n][n]int
	for k := 1; k < len(sequence); k++ {
		follows[sequence[k-1]][sequence[k]]++
	}
	for a := range n {
		for b := range n {
			if follows[a][b] > rounds/2 {
				t.Errorf("participant %d followed %d in %d of %d rounds", b, a, follows[a][b], rounds)
			}
		}
	}
}

// A participant that fails is not run again; the others go on.
func TestInterleaveFailure(t *testing.T) {
	runs := 0
	samples, errs := interleave(10,
		func() ([]float64, error) { runs++; return nil, errors.New("broken") },
		func() ([]float64, error) { return []float64{1}, nil })
	if runs != 1 || errs[0] == nil {
		t.Fatalf("failing participant ran %d times, error %v; want once, an error", runs, errs[0])
	}
	if errs[1] != nil || len(samples[1]) != 10 {
		t.Fatalf("other participant: %d samples, error %v", len(samples[1]), errs[1])
	}
}
