// Package recall replays a conversation trace through the hippocampus:
//
//	go run ./tools/bench recall --trace FILE [--k 8] [--scorer ours]
//
// Turns are replayed in time order on a simulated clock through the real
// service: its region, scorer, governor, runner and ready buffers (only the
// gRPC layer and the disk are left out). Before each turn the runner is
// advanced to the turn's time, running every tick that came due. For a turn
// with "needs", the replayer peeks the (persona, channel) buffer — a hit
// when the needed engram is in the slice — and on a miss asks whether a
// tick run at that instant would have staged it (a late miss); then it
// consumes the needed engram. Then it remembers the turn's engram. A hit
// from a slice past its expiry (a channel that slept since) is also
// counted apart, as a stale hit, and the strict figures that count it as a
// miss are reported too (fresh_hit_at_k, fresh_timeliness).
//
// It prints one line per kind of need and, last, one line of JSON with
// turns, needs, hits, hit_at_k, timeliness (hits / (hits + late misses)),
// consumption_fraction (staged items consumed / new items published),
// ticks, tick_p50_us, tick_p99_us and the same per kind.
package recall

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/continuum-mesh/continuum/pkg/region"
	"github.com/continuum-mesh/continuum/services/hippocampus"
)

// Turn is one line of a trace.
type Turn struct {
	T          float64  `json:"t"`
	Persona    string   `json:"persona"`
	Channel    string   `json:"channel"`
	Engram     string   `json:"engram"`
	Topics     []string `json:"topics"`
	Entities   []string `json:"entities"`
	Importance int      `json:"importance"`
	Needs      *string  `json:"needs"`
	// Kind labels the need for per-kind results; optional.
	Kind string `json:"kind,omitempty"`
}

// KindResult is the outcome for one kind of need.
type KindResult struct {
	Needs    int     `json:"needs"`
	Hits     int     `json:"hits"`
	Late     int     `json:"late"`
	HitAtK   float64 `json:"hit_at_k"`
	Timeline float64 `json:"timeliness"`
}

// Result is the replay's outcome; its JSON is the last line printed.
type Result struct {
	Scorer              string                 `json:"scorer"`
	K                   int                    `json:"k"`
	Turns               int                    `json:"turns"`
	Needs               int                    `json:"needs"`
	Hits                int                    `json:"hits"`
	StaleHits           int                    `json:"stale_hits"`
	Late                int                    `json:"late"`
	Unknown             int                    `json:"unknown_needs"`
	HitAtK              float64                `json:"hit_at_k"`
	Timeliness          float64                `json:"timeliness"`
	FreshHitAtK         float64                `json:"fresh_hit_at_k"`
	FreshTimeliness     float64                `json:"fresh_timeliness"`
	ConsumptionFraction float64                `json:"consumption_fraction"`
	Ticks               int                    `json:"ticks"`
	TicksPerNeed        float64                `json:"ticks_per_need"`
	TickP50us           float64                `json:"tick_p50_us"`
	TickP99us           float64                `json:"tick_p99_us"`
	TickMaxus           float64                `json:"tick_max_us"`
	Engrams             int                    `json:"engrams"`
	Kinds               map[string]*KindResult `json:"kinds"`
}

// Options are a replay's settings.
type Options struct {
	K      int
	Scorer string
	// Model overrides the scorer's parameters when its D is set.
	Model hippocampus.Model
	// Config tweaks, applied after K and Scorer (may be nil).
	Tweak func(*hippocampus.Config)
}

// epoch is the simulated time of t = 0.
var epoch = time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)

// Run is the recall subcommand.
func Run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("recall", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	trace := fs.String("trace", "", "JSON-lines trace to replay (required)")
	k := fs.Int("k", 8, "ready buffer slots per (persona, channel)")
	scorer := fs.String("scorer", hippocampus.ScorerOurs, "ranking: "+strings.Join(hippocampus.Scorers, " | "))
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("recall: %w (usage: recall --trace FILE [--k 8] [--scorer ours])", err)
	}
	if *trace == "" {
		return errors.New("recall: --trace FILE is required")
	}
	f, err := os.Open(*trace)
	if err != nil {
		return err
	}
	defer f.Close()
	turns, err := ReadTrace(f)
	if err != nil {
		return fmt.Errorf("recall: %s: %w", *trace, err)
	}
	res, err := Replay(context.Background(), turns, Options{K: *k, Scorer: *scorer})
	if err != nil {
		return err
	}
	return Print(out, res)
}

// ReadTrace parses a JSON-lines trace and orders it by time (stably).
func ReadTrace(r io.Reader) ([]Turn, error) {
	var turns []Turn
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		var t Turn
		if err := json.Unmarshal(b, &t); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if t.Persona == "" || t.Channel == "" || t.Engram == "" || math.IsNaN(t.T) || math.IsInf(t.T, 0) {
			return nil, fmt.Errorf("line %d: persona, channel, engram and a finite t are required", line)
		}
		turns = append(turns, t)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	slices.SortStableFunc(turns, func(a, b Turn) int {
		switch {
		case a.T < b.T:
			return -1
		case a.T > b.T:
			return 1
		}
		return 0
	})
	return turns, nil
}

// Replay runs turns through a fresh in-memory hippocampus.
func Replay(ctx context.Context, turns []Turn, o Options) (*Result, error) {
	if o.K == 0 {
		o.K = 8
	}
	if o.Scorer == "" {
		o.Scorer = hippocampus.ScorerOurs
	}
	start := epoch
	if len(turns) > 0 && turns[0].T < 0 {
		start = epoch.Add(time.Duration(turns[0].T*float64(time.Second)) * -1)
	}
	clock := region.NewManualClock(start)
	var durations []time.Duration
	var published, consumed int
	cfg := hippocampus.Config{K: o.K, Scorer: o.Scorer, Model: o.Model}
	if o.Tweak != nil {
		o.Tweak(&cfg)
	}
	svc, err := hippocampus.New(cfg, hippocampus.Deps{
		Clock:  clock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnTick: func(t region.Telemetry) {
			if t.Deferred {
				return
			}
			durations = append(durations, t.Duration)
			published += t.Published
			consumed += t.Consumed
		},
	})
	if err != nil {
		return nil, err
	}
	defer svc.Close()
	runner := svc.Runner()

	res := &Result{Scorer: o.Scorer, K: o.K, Kinds: map[string]*KindResult{}}
	known := map[string]string{} // engram -> persona
	for _, t := range turns {
		at := start.Add(time.Duration(t.T * float64(time.Second)))
		if _, err := runner.AdvanceTo(ctx, at); err != nil {
			return nil, err
		}
		res.Turns++
		if t.Needs != nil {
			kind := t.Kind
			if kind == "" {
				kind = "unlabelled"
			}
			kr := res.Kinds[kind]
			if kr == nil {
				kr = &KindResult{}
				res.Kinds[kind] = kr
			}
			need := *t.Needs
			if known[need] != t.Persona {
				res.Unknown++
			} else {
				res.Needs++
				kr.Needs++
				sl := svc.PeekLocal(t.Persona, t.Channel)
				hit := sl != nil && slices.ContainsFunc(sl.Items, func(it hippocampus.Item) bool { return it.ID == need })
				switch {
				case hit:
					res.Hits++
					kr.Hits++
					if sl.Expired(at) {
						res.StaleHits++
					}
				case svc.WouldStage(t.Persona, t.Channel, need):
					res.Late++
					kr.Late++
				}
				if _, err := svc.Consume(ctx, t.Persona, t.Channel, []string{need}); err != nil {
					return nil, fmt.Errorf("consume %s for %s: %w", need, t.Engram, err)
				}
			}
		}
		if _, ok := known[t.Engram]; ok {
			continue // a repeated engram id: remembered once
		}
		imp := uint32(0)
		if t.Importance >= 1 && t.Importance <= 10 {
			imp = uint32(t.Importance)
		}
		if _, _, err := svc.Remember(ctx, t.Persona, t.Channel, hippocampus.EngramInput{
			ID: t.Engram, Topics: t.Topics, Entities: t.Entities, Importance: imp, At: at,
		}); err != nil {
			return nil, fmt.Errorf("remember %s: %w", t.Engram, err)
		}
		known[t.Engram] = t.Persona
		res.Engrams++
	}
	res.Ticks = len(durations)
	res.HitAtK = ratio(res.Hits, res.Needs)
	res.Timeliness = ratio(res.Hits, res.Hits+res.Late)
	res.FreshHitAtK = ratio(res.Hits-res.StaleHits, res.Needs)
	res.FreshTimeliness = ratio(res.Hits-res.StaleHits, res.Hits+res.Late)
	res.ConsumptionFraction = ratio(consumed, published)
	res.TicksPerNeed = ratio(res.Ticks, res.Needs)
	if len(durations) > 0 {
		sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
		res.TickP50us = micros(durations[len(durations)/2])
		res.TickP99us = micros(durations[min(len(durations)-1, len(durations)*99/100)])
		res.TickMaxus = micros(durations[len(durations)-1])
	}
	for _, kr := range res.Kinds {
		kr.HitAtK = ratio(kr.Hits, kr.Needs)
		kr.Timeline = ratio(kr.Hits, kr.Hits+kr.Late)
	}
	return res, nil
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return math.Round(float64(a)/float64(b)*1e4) / 1e4
}

func micros(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)*10) / 10 }

// Print writes the per-kind lines and, last, the result as one JSON line.
func Print(w io.Writer, r *Result) error {
	kinds := make([]string, 0, len(r.Kinds))
	for k := range r.Kinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "scorer %s, K=%d: %d turns, %d needs, %d engrams\n", r.Scorer, r.K, r.Turns, r.Needs, r.Engrams)
	for _, k := range kinds {
		kr := r.Kinds[k]
		fmt.Fprintf(w, "  %-14s needs %5d  hit@%d %.3f  late %4d  timeliness %.3f\n", k, kr.Needs, r.K, kr.HitAtK, kr.Late, kr.Timeline)
	}
	fmt.Fprintf(w, "  %-14s needs %5d  hit@%d %.3f  late %4d  timeliness %.3f\n", "all", r.Needs, r.K, r.HitAtK, r.Late, r.Timeliness)
	fmt.Fprintf(w, "  %d hits came from an expired slice; counting them as misses: hit@%d %.3f, timeliness %.3f\n",
		r.StaleHits, r.K, r.FreshHitAtK, r.FreshTimeliness)
	fmt.Fprintf(w, "  ticks %d (%.2f per need), tick p50 %.1f µs, p99 %.1f µs, max %.1f µs; consumption fraction %.4f\n",
		r.Ticks, r.TicksPerNeed, r.TickP50us, r.TickP99us, r.TickMaxus, r.ConsumptionFraction)
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}
