/*
 * ACME Thermo factory self-test, released to afterlife at end of life.
 * Checks the temperature conversion table and reports on the service
 * header and on the debug console (semihosting), then stops.
 */
#include <string.h>
#include "semihost.h"
#include "uart.h"

/* ADC counts at 0, 10, 20, 30, 40 degrees Celsius for the NTC divider. */
static const unsigned short ntc_counts[] = {3030, 2650, 2245, 1850, 1490};

static int table_is_monotonic(void)
{
	for (unsigned i = 1; i < sizeof ntc_counts / sizeof ntc_counts[0]; i++)
		if (ntc_counts[i] >= ntc_counts[i - 1])
			return 0;
	return 1;
}

int main(void)
{
	static char line[64];
	const char *verdict = table_is_monotonic() ? "ok" : "FAIL";

	strcpy(line, "afterlife cortex-m3 demo: ");
	strcat(line, verdict);
	strcat(line, "\n");

	uart_init();
	uart_puts(line);
	semihost_write0(line);
	semihost_exit(verdict[0] == 'o');
}
