/* UART0 of the LM3S6965: the ACME Thermo's service header. */
#ifndef UART_H
#define UART_H

void uart_init(void);
void uart_puts(const char *s);

#endif
