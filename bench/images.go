package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tether-gitops/tether/e2e/registry"
	"github.com/tether-gitops/tether/images"
)

// The images step: a scan round of 100 image repositories with 200 tags
// each, against Debian's docker-registry, with the requests one round sends
// and the scanning process's peak RSS. The scans run in a child process
// (this binary's images-scan subcommand) so its ru_maxrss is theirs alone.

const (
	imagesCommand = "images-scan"
	imagesRepos   = 100
	imagesTags    = 200
	imagesRounds  = 2
)

// imagesRound is what one scan round reported.
type imagesRound struct {
	Requests int64         `json:"requests"`
	Tags     int           `json:"tags"`
	Failed   int           `json:"failed"`
	Duration time.Duration `json:"duration"`
}

// runImagesScan is the child: imagesRounds scan rounds of every
// repository (8 at a time, as tether's loops would overlap), one JSON line
// per round.
func runImagesScan(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(imagesCommand, flag.ContinueOnError)
	host := fs.String("registry", "", "registry host:port (plain HTTP)")
	repos := fs.Int("repos", imagesRepos, "repositories bench/app-0 ... bench/app-N-1")
	if err := fs.Parse(args); err != nil {
		return err
	}
	scanner := images.NewScanner(nil)
	reg := images.Registry{Host: *host, Insecure: true}
	policies := make([]*images.Policy, *repos)
	for i := range policies {
		policies[i] = &images.Policy{Name: fmt.Sprintf("app-%d", i), Image: fmt.Sprintf("%s/bench/app-%d", *host, i),
			Kind: images.SemVer, Range: ">=1.0.0", Exclude: images.DefaultExclude()}
		if err := policies[i].Compile(); err != nil {
			return err
		}
	}
	enc := json.NewEncoder(stdout)
	for range imagesRounds {
		var round imagesRound
		var mu sync.Mutex
		var requests atomic.Int64
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		start := time.Now()
		for _, p := range policies {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				res, err := scanner.Scan(ctx, p, reg, 51, func() { requests.Add(1) })
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					round.Failed++
					return
				}
				round.Tags += res.Tags
			}()
		}
		wg.Wait()
		round.Duration, round.Requests = time.Since(start), requests.Load()
		if err := enc.Encode(round); err != nil {
			return err
		}
	}
	return nil
}

// imagesStep fills a registry and runs the child; it prints its lines and
// reports whether it failed.
func (b *bench) imagesStep(ctx context.Context) bool {
	fmt.Fprintf(b.out, "bench: images: %d repositories × %d tags in docker-registry\n", imagesRepos, imagesTags)
	rounds, rssKiB, err := b.imagesRun(ctx)
	if err != nil {
		fmt.Fprintf(b.out, "bench: images: FAILED: %v\n", err)
		return true
	}
	for i, r := range rounds {
		fmt.Fprintf(b.out, "bench: images: scan round %d: %d requests (%.1f per repository), %d tags seen, %d failed, %s\n",
			i+1, r.Requests, float64(r.Requests)/imagesRepos, r.Tags, r.Failed, r.Duration.Round(time.Millisecond))
	}
	fmt.Fprintf(b.out, "bench: images: peak RSS of the scanning process %.1f MiB\n", float64(rssKiB)/1024)
	for _, r := range rounds {
		if r.Failed > 0 || r.Tags != imagesRepos*imagesTags {
			return true
		}
	}
	return false
}

func (b *bench) imagesRun(ctx context.Context) ([]imagesRound, int64, error) {
	reg, err := registry.Start(registry.Options{})
	if err != nil {
		return nil, 0, err
	}
	defer reg.Close()
	tags := make([]string, imagesTags-1)
	for i := range tags {
		tags[i] = "1." + strconv.Itoa(i/20) + "." + strconv.Itoa(i%20)
	}
	for i := range imagesRepos {
		repo := fmt.Sprintf("bench/app-%d", i)
		digest, err := reg.Push(ctx, "", repo, "0.1.0")
		if err != nil {
			return nil, 0, err
		}
		// The other tags point at the same manifest, written into the
		// registry's storage directly: 19,900 pushes would take long.
		if err := reg.TagDirectly(repo, digest, tags); err != nil {
			return nil, 0, err
		}
	}
	cmd := exec.CommandContext(ctx, b.self, imagesCommand, "--registry", reg.Host, "--repos", strconv.Itoa(imagesRepos))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.Output()
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", imagesCommand, err)
	}
	var rssKiB int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rssKiB = ru.Maxrss
	}
	var rounds []imagesRound
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var r imagesRound
		if err := dec.Decode(&r); err != nil {
			return nil, 0, err
		}
		rounds = append(rounds, r)
	}
	return rounds, rssKiB, nil
}
