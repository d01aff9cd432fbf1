/*
 * A stand-in for NVIDIA's /usr/bin/tegrastats, used only by scripts/test-docker.sh.
 *
 * Built with aarch64-linux-gnu-gcc as an ordinary dynamically linked glibc program, so the
 * exporter image has to reach it exactly as it reaches the real one on a Jetson: through a bind
 * mount of the binary plus the host's loader and libraries. It prints Jetson AGX Orin (JetPack 6)
 * lines in tegrastats' format, cycling through a few readings, once per --interval ms, to stdout
 * or to --logfile. --start/--stop are accepted (--stop exits at once) like the real tool.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const READINGS[] = {
    "RAM 6879/62841MB (lfb 3x4MB) SWAP 0/31421MB (cached 0MB) CPU [5%@729,1%@729,0%@729,9%@729,1%@729,3%@729,5%@729,0%@729,3%@729,1%@729,1%@729,7%@729] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305,305] NVENC off NVDEC off NVJPG off NVJPG1 off VIC off OFA off NVDLA0 off NVDLA1 off PVA0_FREQ off APE 174 cpu@47.687C tboard@36.75C soc2@44.312C tdiode@37.5C soc0@45.718C gpu@43.218C tj@47.687C soc1@45.125C VDD_GPU_SOC 2801mW/2801mW VDD_CPU_CV 400mW/400mW VIN_SYS_5V0 4536mW/4536mW VDDQ_VDD2_1V8AO 604mW/604mW",
    "RAM 6873/62841MB (lfb 3x4MB) SWAP 0/31421MB (cached 0MB) CPU [13%@729,9%@729,7%@729,7%@729,5%@729,1%@729,15%@729,3%@729,3%@729,13%@729,3%@729,9%@729] EMC_FREQ 1%@2133 GR3D_FREQ 40%@[305,305] NVENC off NVDEC off NVJPG off NVJPG1 off VIC off OFA off NVDLA0 off NVDLA1 off PVA0_FREQ off APE 174 cpu@47.906C tboard@36.75C soc2@44.468C tdiode@37.5C soc0@45.781C gpu@43.437C tj@47.968C soc1@45.156C VDD_GPU_SOC 3201mW/2934mW VDD_CPU_CV 800mW/533mW VIN_SYS_5V0 4737mW/4636mW VDDQ_VDD2_1V8AO 705mW/637mW",
    "RAM 6885/62841MB (lfb 8x4MB) SWAP 0/31421MB (cached 0MB) CPU [0%@729,0%@729,5%@729,0%@729,10%@729,0%@729,0%@729,3%@729,0%@729,1%@729,1%@729,0%@729] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[0,0] NVENC off NVDEC off NVJPG off NVJPG1 off VIC off OFA off NVDLA0 off NVDLA1 off PVA0_FREQ off APE 174 cpu@48.093C tboard@37C soc2@44.75C tdiode@38C soc0@46.031C gpu@43.718C tj@48.093C soc1@45.625C VDD_GPU_SOC 2801mW/3203mW VDD_CPU_CV 400mW/1663mW VIN_SYS_5V0 4536mW/5229mW VDDQ_VDD2_1V8AO 603mW/1045mW",
};

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv) {
    long interval_ms = 1000;
    const char *logfile = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
            interval_ms = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--logfile") == 0 && i + 1 < argc) {
            logfile = argv[++i];
        } else if (strcmp(argv[i], "--stop") == 0) {
            return 0;
        } else if (strcmp(argv[i], "--start") == 0) {
            /* The real tool daemonises; staying in the foreground is enough here. */
        } else {
            fprintf(stderr, "fake tegrastats: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (interval_ms < 1) {
        fprintf(stderr, "fake tegrastats: --interval must be at least 1 ms\n");
        return 2;
    }
    FILE *out = stdout;
    if (logfile != NULL && (out = fopen(logfile, "a")) == NULL) {
        perror("fake tegrastats: --logfile");
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    struct timespec pause = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
    for (unsigned long n = 0; !stop; n++) {
        char stamp[32];
        time_t now = time(NULL);
        strftime(stamp, sizeof stamp, "%m-%d-%Y %H:%M:%S", localtime(&now));
        if (fprintf(out, "%s %s\n", stamp, READINGS[n % (sizeof READINGS / sizeof READINGS[0])]) < 0 ||
            fflush(out) != 0) {
            return 0; /* reader went away */
        }
        nanosleep(&pause, NULL);
    }
    return 0;
}
