/*
 * Vector table and reset handler for the ACME Thermo (LM3S6965, Cortex-M3).
 * Copies .data from flash, clears .bss, then calls main().
 */
#include <stdint.h>

extern uint32_t _stack_top, _data_load, _data_start, _data_end, _bss_start, _bss_end;
extern int main(void);

void reset_handler(void);
static void default_handler(void);

__attribute__((section(".vectors"), used))
static void (*const vectors[16])(void) = {
	(void (*)(void))&_stack_top, /* initial stack pointer */
	reset_handler,               /* reset */
	default_handler,             /* NMI */
	default_handler,             /* hard fault */
	default_handler,             /* memory management fault */
	default_handler,             /* bus fault */
	default_handler,             /* usage fault */
	0, 0, 0, 0,                  /* reserved */
	default_handler,             /* SVCall */
	default_handler,             /* debug monitor */
	0,                           /* reserved */
	default_handler,             /* PendSV */
	default_handler,             /* SysTick */
};

void reset_handler(void)
{
	uint32_t *src = &_data_load;
	for (uint32_t *dst = &_data_start; dst < &_data_end;)
		*dst++ = *src++;
	for (uint32_t *dst = &_bss_start; dst < &_bss_end;)
		*dst++ = 0;
	main();
	for (;;)
		;
}

static void default_handler(void)
{
	for (;;)
		;
}
