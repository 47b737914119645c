package gateway

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// static holds the status page: plain HTML, CSS and JavaScript with no
// build step and no external assets.
//
//go:embed static
var static embed.FS

// pageCSP lets the page load only its own script, style and API.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// page serves the status page.
type page struct{ files fs.FS }

func statusPage() (page, error) {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return page{}, fmt.Errorf("gateway: embedded status page: %w", err)
	}
	if _, err := fs.Stat(sub, "index.html"); err != nil {
		return page{}, fmt.Errorf("gateway: embedded status page: %w", err)
	}
	return page{files: sub}, nil
}

func pageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	// The page is part of the binary; a new binary may change it.
	h.Set("Cache-Control", "no-cache")
}

// index serves the page at /.
func (p page) index() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(p.files, "index.html")
		if err != nil {
			http.Error(w, "status page missing", http.StatusInternalServerError)
			return
		}
		pageHeaders(w.Header())
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(b)
	})
}

// assets serves /ui/<file> (no directory listings).
func (p page) assets() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/ui/")
		if name == "" || strings.HasSuffix(name, "/") || path.Clean(name) != name || name == "index.html" {
			http.NotFound(w, r)
			return
		}
		b, err := fs.ReadFile(p.files, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		pageHeaders(w.Header())
		switch path.Ext(name) {
		case ".js":
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		case ".css":
			w.Header().Set("Content-Type", "text/css; charset=utf-8")
		default:
			w.Header().Set("Content-Type", "application/octet-stream")
		}
		// The bytes are the embedded page's own files, served with their
		// content type and nosniff; the request only picks which one.
		_, _ = w.Write(b) //nolint:gosec // G705: not request data
	})
}
