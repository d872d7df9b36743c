// Command afterlife-camd is the community daemon for the demo camera: it
// serves the camera's status over HTTP on the local network, so owners keep
// a working device after the vendor's cloud is gone. It talks to nothing on
// the internet.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"
)

// version is the firmware version, matching afterlife.yaml.
const version = "1.0.0"

// status is what GET /status returns.
type status struct {
	Firmware string  `json:"firmware"`
	Hostname string  `json:"hostname"`
	Uptime   float64 `json:"uptime_seconds"`
	Sensor   string  `json:"sensor"`
	Recorder string  `json:"recorder"`
}

func readUptime(path string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var up float64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%f", &up); err != nil {
		return 0
	}
	return up
}

func sensorState(dev string) string {
	if _, err := os.Stat(dev); err != nil {
		return "absent"
	}
	return "present"
}

func newMux(sensorDev string, started time.Time) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		host, _ := os.Hostname()
		up := readUptime("/proc/uptime")
		if up == 0 {
			up = time.Since(started).Seconds()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(status{
			Firmware: "afterlife-cam " + version,
			Hostname: host,
			Uptime:   up,
			Sensor:   sensorState(sensorDev),
			Recorder: "local-only",
		})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	return mux
}

func main() {
	addr := flag.String("listen", ":8080", "address to serve the status API on")
	sensor := flag.String("sensor", "/dev/video0", "camera sensor device")
	flag.Parse()
	srv := &http.Server{
		Addr:              *addr,
		Handler:           newMux(*sensor, time.Now()),
		ReadHeaderTimeout: 5 * time.Second,
	}
	log.Printf("afterlife-camd %s listening on %s", version, *addr)
	if err := srv.ListenAndServe(); err != nil {
		log.Fatal(err)
	}
}
