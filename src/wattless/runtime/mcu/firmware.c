/* A test firmware for an emulated Cortex-M4 (QEMU, mps2-an386): reads samples from the host through semihosting,
 * runs wl_predict on each and prints the predicted classes (or the first output) as one line. Written by wattless
 * to check that the microcontroller build predicts what the PC build does; not part of the exported library. */
#include <stdint.h>

#include "model.h"

enum { SYS_OPEN = 0x01, SYS_CLOSE = 0x02, SYS_WRITE0 = 0x04, SYS_READ = 0x06, SYS_EXIT = 0x18 };

static int semihost(int op, void *arg) {
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static void put(const char *text) { semihost(SYS_WRITE0, (void *)text); }

static void leave(int ok) { semihost(SYS_EXIT, (void *)(uintptr_t)(ok ? 0x20026 : 0x20024)); for (;;) {} }

static float arena[(WL_ARENA_BYTES + 3) / 4];
static float input[WL_INPUT_SIZE], output[WL_OUTPUT_SIZE];

int main(void) {
    static const char name[] = "samples.bin";
    uintptr_t open_args[3] = {(uintptr_t)name, 1 /* "rb" */, sizeof(name) - 1};
    int file = semihost(SYS_OPEN, open_args);
    if (file < 0) { put("error: samples.bin not found\n"); leave(0); }
    char line[16];
    for (;;) {
        uintptr_t read_args[3] = {(uintptr_t)file, (uintptr_t)input, sizeof(input)};
        if (semihost(SYS_READ, read_args) != 0) break; /* the number of bytes NOT read: the end of the file */
        if (wl_predict(input, output, arena, sizeof(arena)) != WL_OK) { put("error: wl_predict failed\n"); leave(0); }
        int best = 0;
        for (int i = 1; i < WL_OUTPUT_SIZE; i++) if (output[i] > output[best]) best = i;
        int n = 0, digits[8], value = best;
        do { digits[n++] = value % 10; value /= 10; } while (value);
        int k = 0;
        while (n) line[k++] = (char)('0' + digits[--n]);
        line[k++] = ' ';
        line[k] = 0;
        put(line);
    }
    uintptr_t close_args[1] = {(uintptr_t)file};
    semihost(SYS_CLOSE, close_args);
    put("\n");
    leave(1);
    return 0;
}

/* ---- start-up: zero .bss, switch the FPU on, run main; any fault ends the emulation with an error ---- */
extern uint32_t __bss_start__, __bss_end__, __stack_top;

void wl_reset(void) {
    for (uint32_t *p = &__bss_start__; p < &__bss_end__; p++) *p = 0;
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: full access to CP10 and CP11 (the FPU) */
    __asm__ volatile("dsb\n\tisb");
    main();
    leave(1);
}

static void fault(void) { put("error: the processor faulted\n"); leave(0); }

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))&__stack_top, wl_reset, fault, fault, fault, fault, fault, 0, 0, 0, 0, fault, fault, 0, fault, fault,
};

/* The C library's memory functions the model uses, so that the firmware links without one. */
void *memcpy(void *to, const void *from, unsigned n) {
    char *d = to;
    const char *s = from;
    while (n--) *d++ = *s++;
    return to;
}

void *memset(void *to, int value, unsigned n) {
    char *d = to;
    while (n--) *d++ = (char)value;
    return to;
}
