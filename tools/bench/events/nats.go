package events

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// natsEnv is an embedded NATS server with JetStream, on loopback.
type natsEnv struct {
	srv *server.Server
	nc  *nats.Conn
	js  nats.JetStreamContext
}

func startNATS(dir string) (*natsEnv, error) {
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: dir, SyncAlways: true,
	})
	if err != nil {
		return nil, err
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	js, err := nc.JetStream()
	if err != nil {
		return nil, err
	}
	for _, sc := range []*nats.StreamConfig{
		{Name: "MEM", Subjects: []string{"mem.>"}, Storage: nats.MemoryStorage},
		{Name: "FILE", Subjects: []string{"file.>"}, Storage: nats.FileStorage},
	} {
		if _, err := js.AddStream(sc); err != nil {
			return nil, err
		}
	}
	return &natsEnv{srv: srv, nc: nc, js: js}, nil
}

func (n *natsEnv) close() {
	n.nc.Close()
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

func (n *natsEnv) connect() (*nats.Conn, error) { return nats.Connect(n.srv.ClientURL()) }

func (n *natsEnv) flushLatency(size, count int) (latencies, error) {
	data := []byte(padding(size))
	lat := make(latencies, 0, count)
	for i := 0; i < count+100; i++ {
		t0 := time.Now()
		if err := n.nc.Publish("core.ack", data); err != nil {
			return nil, err
		}
		if err := n.nc.Flush(); err != nil {
			return nil, err
		}
		if i >= 100 {
			lat = append(lat, time.Since(t0))
		}
	}
	return lat, nil
}

func (n *natsEnv) jsAckLatency(subject string) func(size, count int) (latencies, error) {
	return func(size, count int) (latencies, error) {
		data := []byte(padding(size))
		lat := make(latencies, 0, count)
		for i := 0; i < count+100; i++ {
			t0 := time.Now()
			if _, err := n.js.Publish(subject, data); err != nil {
				return nil, err
			}
			if i >= 100 {
				lat = append(lat, time.Since(t0))
			}
		}
		return lat, nil
	}
}

func (n *natsEnv) jsThroughput(subject string, size, count, workers int) (rateResult, error) {
	data := []byte(padding(size))
	var next atomic.Int64
	lats := make([]latencies, workers)
	errs := make(chan error, workers)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(count) {
				t0 := time.Now()
				if _, err := n.js.Publish(subject, data); err != nil {
					errs <- err
					return
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return rateResult{}, err
	}
	var all latencies
	for _, l := range lats {
		all = append(all, l...)
	}
	return rateResult{rate: float64(count) / elapsed.Seconds(), sent: count, lat: all}, nil
}

func (n *natsEnv) jsAsyncThroughput(subject string, size, count int) (rateResult, error) {
	data := []byte(padding(size))
	start := time.Now()
	for i := 0; i < count; i++ {
		if _, err := n.js.PublishAsync(subject, data, nats.StallWait(time.Minute)); err != nil {
			return rateResult{}, err
		}
	}
	select {
	case <-n.js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		return rateResult{}, errors.New("async publishes not acknowledged after 60 s")
	}
	return rateResult{rate: float64(count) / time.Since(start).Seconds(), sent: count}, nil
}

func (n *natsEnv) deliverLatency(size, rate int, d time.Duration) (rateResult, error) {
	sub, err := n.connect()
	if err != nil {
		return rateResult{}, err
	}
	defer sub.Close()
	base := time.Now()
	var mu sync.Mutex
	var lat latencies
	all := make(chan struct{})
	var expect atomic.Int64
	expect.Store(-1)
	s, err := sub.Subscribe("lat.x", func(m *nats.Msg) {
		sent := time.Duration(binary.LittleEndian.Uint64(m.Data))
		mu.Lock()
		lat = append(lat, time.Since(base)-sent)
		got := len(lat)
		mu.Unlock()
		if e := expect.Load(); e >= 0 && int64(got) == e {
			close(all)
		}
	})
	if err != nil {
		return rateResult{}, err
	}
	_ = s.SetPendingLimits(-1, -1)
	if err := sub.Flush(); err != nil {
		return rateResult{}, err
	}
	data := []byte(padding(max(size, 8)))
	buf := make([]byte, len(data))
	sent := pace(rate, d, func(int) {
		copy(buf, data)
		binary.LittleEndian.PutUint64(buf, uint64(time.Since(base)))
		_ = n.nc.Publish("lat.x", buf)
	})
	if err := n.nc.Flush(); err != nil {
		return rateResult{}, err
	}
	mu.Lock()
	got := len(lat)
	expect.Store(int64(sent))
	mu.Unlock()
	if got < sent {
		select {
		case <-all:
		case <-time.After(10 * time.Second):
			return rateResult{}, errors.New("deliveries missing after 10 s")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return rateResult{sent: sent, lat: lat}, nil
}

func (n *natsEnv) fanout(size, count, fan int) (rateResult, error) {
	var finished sync.WaitGroup
	var lastMu sync.Mutex
	var last time.Time
	subject := "fan.x"
	var conns []*nats.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for s := 0; s < fan; s++ {
		c, err := n.connect()
		if err != nil {
			return rateResult{}, err
		}
		conns = append(conns, c)
		got := 0
		finished.Add(1)
		sub, err := c.Subscribe(subject, func(*nats.Msg) {
			if got++; got == count {
				lastMu.Lock()
				last = time.Now()
				lastMu.Unlock()
				finished.Done()
			}
		})
		if err != nil {
			return rateResult{}, err
		}
		_ = sub.SetPendingLimits(-1, -1)
		if err := c.Flush(); err != nil {
			return rateResult{}, err
		}
	}
	pub, err := n.connect()
	if err != nil {
		return rateResult{}, err
	}
	conns = append(conns, pub)
	data := []byte(padding(size))
	start := time.Now()
	for i := 0; i < count; i++ {
		if err := pub.Publish(subject, data); err != nil {
			return rateResult{}, err
		}
	}
	if err := pub.Flush(); err != nil {
		return rateResult{}, err
	}
	waited := make(chan struct{})
	go func() { finished.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(60 * time.Second):
		return rateResult{}, errors.New("deliveries missing after 60 s (slow consumer?)")
	}
	return rateResult{rate: float64(count) / last.Sub(start).Seconds(), sent: count}, nil
}
