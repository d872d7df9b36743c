/*
 * Minimal ARM semihosting for the ACME Thermo factory test image.
 * SYS_WRITE0 prints a NUL-terminated string on the host console;
 * SYS_EXIT ends the session (angel_SWIReason_ReportException).
 */
#include "semihost.h"

#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
#define ADP_Stopped_ApplicationExit 0x20026
#define ADP_Stopped_RunTimeErrorUnknown 0x20023

static int semihost_call(int op, const void *arg)
{
	register int r0 __asm__("r0") = op;
	register const void *r1 __asm__("r1") = arg;
	__asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
	return r0;
}

void semihost_write0(const char *s)
{
	semihost_call(SYS_WRITE0, s);
}

void semihost_exit(int ok)
{
	/* On ARMv7-M the 32-bit ABI passes the reason code itself in r1. */
	semihost_call(SYS_EXIT, (const void *)(ok ? ADP_Stopped_ApplicationExit : ADP_Stopped_RunTimeErrorUnknown));
	for (;;)
		;
}
