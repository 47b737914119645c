package sweep

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// rawResult is what a hand-made HTTP/2 request got back.
type rawResult struct {
	// refused: the server reset the stream, sent GOAWAY or closed the
	// connection instead of answering.
	refused bool
	// how says how it refused ("RST_STREAM FRAME_SIZE_ERROR", "GOAWAY ...",
	// "connection closed").
	how string
	// st is the status of an answer: OK as soon as response headers came
	// (the server took the request), else the trailers-only status.
	st *status.Status
	// err is a failure of the probe itself (dial, handshake, timeout).
	err error
}

// rawHeaders sends one gRPC request with an extra metadata value of pad
// bytes over a hand-made HTTP/2 connection. Unlike grpc-go's client, it
// ignores the SETTINGS_MAX_HEADER_LIST_SIZE the server advertises, so it
// shows what the server itself does with headers over its limit.
//
// A server stream that takes the request sends no headers until its first
// message, so for one (stream set) silence until the timeout means the
// server took the headers and holds the stream open.
func rawHeaders(ctx context.Context, addr string, tlsConf *tls.Config, path, token string, pad int, payload []byte, timeout time.Duration, stream bool) rawResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return rawResult{err: fmt.Errorf("dial %s: %w", addr, err)}
	}
	defer conn.Close()
	scheme := "http"
	if tlsConf != nil {
		cfg := tlsConf.Clone()
		cfg.NextProtos = []string{"h2"}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return rawResult{err: fmt.Errorf("tls handshake with %s: %w", addr, err)}
		}
		conn, scheme = tc, "https"
	}
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return rawResult{err: err}
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		return rawResult{err: fmt.Errorf("write preface: %w", err)}
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		return rawResult{err: fmt.Errorf("write settings: %w", err)}
	}

	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: scheme},
		{Name: ":path", Value: path},
		{Name: ":authority", Value: addr},
		{Name: "content-type", Value: "application/grpc"},
		{Name: "te", Value: "trailers"},
		{Name: "authorization", Value: "Bearer " + token},
	} {
		if err := enc.WriteField(f); err != nil {
			return rawResult{err: fmt.Errorf("encode headers: %w", err)}
		}
	}
	// The pad is written as a plain literal (no Huffman coding): the
	// encoder's Huffman pass over a megabyte is slow and changes nothing
	// the server sees.
	block.Write(appendLiteralHeader(nil, "x-badinput-pad", pad))
	const streamID = 1
	const chunk = 16 << 10 // the default SETTINGS_MAX_FRAME_SIZE
	// Writes after the server reset the stream may fail; what the server
	// answers is read below either way.
	writeErr := writeHeaderBlock(fr, streamID, block.Bytes(), chunk)
	if writeErr == nil {
		msg := make([]byte, 5+len(payload))
		binary.BigEndian.PutUint32(msg[1:5], uint32(len(payload))) //nolint:gosec // payloads here are small
		copy(msg[5:], payload)
		writeErr = fr.WriteData(streamID, true, msg)
	}

	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
				return rawResult{refused: true, how: "connection closed"}
			}
			if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
				if stream && writeErr == nil {
					return rawResult{st: status.New(codes.OK, "stream held open")}
				}
				if writeErr != nil {
					return rawResult{err: fmt.Errorf("no answer within %s after a failed write: %w", timeout, writeErr)}
				}
				return rawResult{err: fmt.Errorf("no answer within %s", timeout)}
			}
			return rawResult{refused: true, how: "connection error: " + err.Error()}
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = fr.WritePing(true, f.Data)
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == streamID {
				return rawResult{refused: true, how: "RST_STREAM " + f.ErrCode.String()}
			}
		case *http2.GoAwayFrame:
			return rawResult{refused: true, how: "GOAWAY " + f.ErrCode.String()}
		case *http2.MetaHeadersFrame:
			if f.StreamID != streamID {
				continue
			}
			if v := f.PseudoValue("status"); v != "" && v != "200" {
				return rawResult{refused: true, how: "HTTP status " + v}
			}
			s := headerValue(f, "grpc-status")
			if s == "" {
				// Response headers without a status: the server took the
				// request and is answering (or holding a stream open).
				return rawResult{st: status.New(codes.OK, "")}
			}
			return rawResult{st: trailerStatus(s, headerValue(f, "grpc-message"), headerValue(f, "grpc-status-details-bin"))}
		}
	}
}

func writeHeaderBlock(fr *http2.Framer, streamID uint32, block []byte, chunk int) error {
	first := block
	if len(first) > chunk {
		first = first[:chunk]
	}
	rest := block[len(first):]
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: streamID, BlockFragment: first, EndHeaders: len(rest) == 0}); err != nil {
		return fmt.Errorf("write headers: %w", err)
	}
	for len(rest) > 0 {
		n := min(chunk, len(rest))
		if err := fr.WriteContinuation(streamID, n == len(rest), rest[:n]); err != nil {
			return fmt.Errorf("write continuation: %w", err)
		}
		rest = rest[n:]
	}
	return nil
}

func headerValue(f *http2.MetaHeadersFrame, name string) string {
	for _, h := range f.RegularFields() {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// isReset reports a connection the server reset.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// trailerStatus rebuilds the status of a trailers-only answer from its
// grpc-status, grpc-message and grpc-status-details-bin headers, with its
// details, so ErrorInfo reasons survive. The headers come from the server
// under test: anything malformed gives a status that says so.
func trailerStatus(code, message, detailsBin string) *status.Status {
	n, err := strconv.ParseUint(code, 10, 32)
	if err != nil {
		return status.Newf(codes.Unknown, "malformed grpc-status %q", code)
	}
	msg, err := url.PathUnescape(message)
	if err != nil {
		msg = message
	}
	if detailsBin != "" {
		b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(detailsBin, "="))
		if err == nil {
			sp := &spb.Status{}
			if proto.Unmarshal(b, sp) == nil && sp.GetCode() == int32(n) { //nolint:gosec // parsed with bitSize 32
				return status.FromProto(sp)
			}
		}
	}
	return status.New(codes.Code(n), msg)
}

// appendLiteralHeader appends an HPACK "literal header field without
// indexing, new name" (RFC 7541 6.2.2) whose value is n bytes of 'p',
// with neither string Huffman-coded.
func appendLiteralHeader(b []byte, name string, n int) []byte {
	b = append(b, 0x00)
	b = appendHpackInt(b, len(name))
	b = append(b, name...)
	b = appendHpackInt(b, n)
	return append(b, bytes.Repeat([]byte{'p'}, n)...)
}

// appendHpackInt appends an HPACK integer with a 7-bit prefix and the
// Huffman bit clear (RFC 7541 5.1).
func appendHpackInt(b []byte, n int) []byte {
	if n < 127 {
		return append(b, byte(n))
	}
	b = append(b, 127)
	n -= 127
	for n >= 128 {
		b = append(b, byte(n%128+128))
		n /= 128
	}
	return append(b, byte(n))
}
