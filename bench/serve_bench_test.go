package bench

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/slipway/slipway/store/storetest"
)

// BenchmarkServeReady starts `slipway serve` (Redis and S3 up, one in-process worker)
// and times it from the start of the process to the first 200 from /readyz, asked every
// millisecond; each iteration is a new process with a new data directory. It reports the
// median and the slowest start.
func BenchmarkServeReady(b *testing.B) {
	bin := slipwayBinary(b)
	goCache := b.TempDir()
	client := &http.Client{Timeout: time.Second}
	var starts []time.Duration
	b.ResetTimer()
	for range b.N {
		dir := b.TempDir()
		addr := storetest.FreeAddr(b)
		cmd := exec.Command(bin, "serve")
		cmd.Env = serveEnv(b, dir, addr, goCache)
		logPath := filepath.Join(dir, "serve.log")
		logFile, err := os.Create(logPath)
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logFile, logFile
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for {
			resp, err := client.Get("http://" + addr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Since(start) > 30*time.Second {
				log, _ := os.ReadFile(logPath)
				b.Fatalf("slipway serve was not ready within 30s:\n%s", log)
			}
			time.Sleep(time.Millisecond)
		}
		starts = append(starts, time.Since(start))
		b.StopTimer()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logFile.Close()
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(starts, 0.5).Microseconds())/1000, "ready_p50_ms")
	b.ReportMetric(float64(percentile(starts, 1).Microseconds())/1000, "ready_max_ms")
}
