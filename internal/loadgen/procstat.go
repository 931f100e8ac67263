package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Server resources are read from Linux's /proc, summed over the server's
// process tree: the process given and all its descendants, so that a
// server with a process per session (Dovecot) and one with a goroutine
// per session are measured alike.

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// procTree returns root and its descendants.
func procTree(root int) ([]int, error) {
	if _, err := os.Stat("/proc/" + strconv.Itoa(root)); err != nil {
		return nil, fmt.Errorf("server process %d: %w", root, err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue // gone meanwhile
		}
		children[st.ppid] = append(children[st.ppid], pid)
	}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree, nil
}

// procStat is what is used of /proc/PID/stat.
type procStat struct {
	ppid int
	// ticks is utime+stime+cutime+cstime: the process's own CPU time and
	// that of its children it has waited for. Summed over a tree, a
	// child that exits moves from its own line to its parent's, so the
	// sum counts processes that came and went between two samples.
	ticks int64
}

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// The command name is in parentheses and may hold spaces: the
	// fields start after the last ')'.
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return procStat{}, errors.New("malformed stat")
	}
	f := strings.Fields(string(data[end+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
	if len(f) < 15 {
		return procStat{}, errors.New("malformed stat")
	}
	var st procStat
	st.ppid, _ = strconv.Atoi(f[1])
	for _, i := range []int{11, 12, 13, 14} {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		st.ticks += n
	}
	return st, nil
}

// TreeCPU returns the CPU time used so far by the process tree at root.
func TreeCPU(root int) (time.Duration, error) {
	tree, err := procTree(root)
	if err != nil {
		return 0, err
	}
	var ticks int64
	for _, pid := range tree {
		st, err := readStat(pid)
		if err != nil {
			if pid == root {
				return 0, err
			}
			continue
		}
		ticks += st.ticks
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// TreePSS returns the proportional set size of the process tree at root
// (shared pages divided among the processes sharing them) and the number
// of processes.
func TreePSS(root int) (int64, int, error) {
	tree, err := procTree(root)
	if err != nil {
		return 0, 0, err
	}
	var total int64
	for _, pid := range tree {
		kb, err := readPSS(pid)
		if err != nil {
			if pid == root {
				return 0, 0, err
			}
			continue
		}
		total += kb << 10
	}
	return total, len(tree), nil
}

func readPSS(pid int) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("no Pss line in smaps_rollup")
}

// selfCPU is the load generator's own CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
