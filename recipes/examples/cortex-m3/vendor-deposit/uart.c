/*
 * Polled transmit-only driver for UART0 of the LM3S6965, the service
 * header on the ACME Thermo board. The baud rate is left at the boot
 * defaults; the factory jig adapts to it.
 */
#include <stdint.h>
#include "uart.h"

#define UART0_BASE 0x4000C000u
#define UART_DR (*(volatile uint32_t *)(UART0_BASE + 0x000))
#define UART_FR (*(volatile uint32_t *)(UART0_BASE + 0x018))
#define UART_CTL (*(volatile uint32_t *)(UART0_BASE + 0x030))
#define UART_FR_TXFF (1u << 5)
#define UART_CTL_UARTEN (1u << 0)
#define UART_CTL_TXE (1u << 8)

void uart_init(void)
{
	UART_CTL = UART_CTL_UARTEN | UART_CTL_TXE;
}

void uart_puts(const char *s)
{
	for (; *s; s++) {
		while (UART_FR & UART_FR_TXFF)
			;
		UART_DR = (uint32_t)(unsigned char)*s;
	}
}
