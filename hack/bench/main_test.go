package main

import (
	"errors"
	"testing"
)

// Each round runs every participant once, and within the rounds each participant directly
// precedes each other one equally often: the kernel's clean-up after the previous run
// slows the next, so an uneven share of predecessors biases a participant's figure (with
// an order shuffled each round, participant 1 of 5 followed participant 2 in 57 rounds
// and participant 4 in 42, the same in every run).
func TestInterleavePredecessors(t *testing.T) {
	for _, n := range []int{2, 3, 4, 5} {
		rounds := 20 * len(williams(n))
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
				t.Fatalf("%d participants, participant %d: %d samples, error %v; want %d", n, i, len(samples[i]), errs[i], rounds)
			}
		}
		follows := make(map[[2]int]int)
		for k := 0; k < len(sequence); k++ {
			if k%n != 0 { // within a round
				follows[[2]int{sequence[k-1], sequence[k]}]++
			}
		}
		want := rounds / n
		for a := range n {
			for b := range n {
				if got := follows[[2]int{a, b}]; a != b && got != want {
					t.Errorf("%d participants: %d followed %d in %d rounds, want %d", n, b, a, got, want)
				}
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

// quiet runs its figure's sample once, after the grace periods, and passes on its result.
func TestQuietRunsSampleOnce(t *testing.T) {
	calls := 0
	s, err := quiet(func() ([]float64, error) {
		calls++
		return []float64{1.5}, nil
	})()
	if err != nil {
		t.Fatalf("quiet: %v", err)
	}
	if calls != 1 || len(s) != 1 || s[0] != 1.5 {
		t.Fatalf("sample ran %d times and gave %v; want once, [1.5]", calls, s)
	}
}

func TestPerRoundVerdict(t *testing.T) {
	// 200 rounds whose differences are spread evenly over [shift-10, shift+10) ms.
	rounds := func(shift float64) (x, y [][]float64) {
		for i := range 200 {
			d := (shift - 10 + float64(i)*0.1) * 1e-3
			x = append(x, []float64{0.040 + d})
			y = append(y, []float64{0.040})
		}
		return x, y
	}
	for _, c := range []struct {
		shift float64
		want  string
	}{{-5, pairedBelow}, {0, pairedLevel}, {1, pairedLevel}, {5, pairedAbove}} {
		x, y := rounds(c.shift)
		r := perRound("create", x, y, 1)
		if r.verdict != c.want || r.target != pairedTarget {
			t.Errorf("shift %+v ms: verdict %q (target %q), want %q; row %q", c.shift, r.verdict, r.target, c.want, r.a)
		}
	}
	if r := perRound("create", nil, nil, 1); r.verdict != "" {
		t.Errorf("no rounds: verdict %q, want none", r.verdict)
	}
}
