/* SPDX-License-Identifier: MIT */
/*
 * Console output on COM1 and a small printf.
 *
 * Every byte is one `outb` to 0x3f8, i.e. one VM exit: gmvm's console
 * always accepts (LSR reads 0x60), so there is no status polling to double
 * the cost.  printf() formats into a buffer and writes it under a lock, so
 * lines from several vCPUs do not interleave.
 *
 * Formats: %d %i %u %x %X %o %p %s %c %%, flags "-0+ #", width and
 * precision (numbers or *), lengths hh h l ll z j t.
 */
#include "guest.h"

static spinlock_t console_lock = SPINLOCK_INIT;

static void console_write(const char *s, size_t n)
{
	while (n--)
		outb(GM_PORT_COM1, (uint8_t)*s++);
}

int putchar(int c)
{
	char ch = (char)c;

	spin_lock(&console_lock);
	console_write(&ch, 1);
	spin_unlock(&console_lock);
	return (unsigned char)c;
}

int puts(const char *s)
{
	spin_lock(&console_lock);
	console_write(s, strlen(s));
	console_write("\n", 1);
	spin_unlock(&console_lock);
	return 0;
}

/* ---- formatter ---------------------------------------------------------- */

struct out {
	char *buf;	/* NULL: count only */
	size_t size;
	size_t len;	/* characters produced, even past size */
};

static void out_char(struct out *o, char c)
{
	if (o->buf && o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void out_pad(struct out *o, char c, int n)
{
	while (n-- > 0)
		out_char(o, c);
}

#define F_LEFT	0x01
#define F_ZERO	0x02
#define F_PLUS	0x04
#define F_SPACE	0x08
#define F_ALT	0x10

static void out_number(struct out *o, unsigned long long v, bool neg,
		       unsigned int base, bool upper, int flags, int width,
		       int prec)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int n = 0, zeros, len;
	const char *prefix = "";
	int plen;

	while (v) {
		tmp[n++] = digits[v % base];
		v /= base;
	}
	if (prec < 0 && n == 0)
		tmp[n++] = '0';
	/* C: with an explicit precision, 0 prints no digits at all. */

	if (neg)
		prefix = "-";
	else if (flags & F_PLUS)
		prefix = "+";
	else if (flags & F_SPACE)
		prefix = " ";
	if ((flags & F_ALT) && base == 16)
		prefix = upper ? "0X" : "0x";
	else if ((flags & F_ALT) && base == 8 && (n == 0 || tmp[n - 1] != '0'))
		prefix = "0";
	plen = (int)strlen(prefix);

	zeros = prec > n ? prec - n : 0;
	len = plen + zeros + n;
	if (prec < 0 && (flags & F_ZERO) && !(flags & F_LEFT) && width > len) {
		zeros += width - len;
		len = width;
	}
	if (!(flags & F_LEFT))
		out_pad(o, ' ', width - len);
	while (*prefix)
		out_char(o, *prefix++);
	out_pad(o, '0', zeros);
	while (n)
		out_char(o, tmp[--n]);
	if (flags & F_LEFT)
		out_pad(o, ' ', width - len);
}

static void format(struct out *o, const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		int flags = 0, width = 0, prec = -1, lng = 0;
		unsigned long long u;
		long long s;
		unsigned int base;
		bool upper = false;

		if (*fmt != '%') {
			out_char(o, *fmt);
			continue;
		}
		fmt++;
		for (;; fmt++) {
			if (*fmt == '-')
				flags |= F_LEFT;
			else if (*fmt == '0')
				flags |= F_ZERO;
			else if (*fmt == '+')
				flags |= F_PLUS;
			else if (*fmt == ' ')
				flags |= F_SPACE;
			else if (*fmt == '#')
				flags |= F_ALT;
			else
				break;
		}
		if (*fmt == '*') {
			width = va_arg(ap, int);
			if (width < 0) {
				flags |= F_LEFT;
				width = -width;
			}
			fmt++;
		} else {
			while (*fmt >= '0' && *fmt <= '9')
				width = width * 10 + (*fmt++ - '0');
		}
		if (*fmt == '.') {
			fmt++;
			prec = 0;
			if (*fmt == '*') {
				prec = va_arg(ap, int);
				fmt++;
			} else {
				while (*fmt >= '0' && *fmt <= '9')
					prec = prec * 10 + (*fmt++ - '0');
			}
		}
		/* lng: -2 hh, -1 h, 0 int, 1 long, 2 long long */
		for (;; fmt++) {
			if (*fmt == 'h')
				lng--;
			else if (*fmt == 'l')
				lng++;
			else if (*fmt == 'z' || *fmt == 'j' || *fmt == 't')
				lng = 2;	/* all 64-bit here */
			else
				break;
		}

		switch (*fmt) {
		case 'd':
		case 'i':
			if (lng >= 1)
				s = lng == 1 ? va_arg(ap, long) :
					       va_arg(ap, long long);
			else
				s = va_arg(ap, int);
			if (lng == -1)
				s = (short)s;
			else if (lng <= -2)
				s = (signed char)s;
			u = s < 0 ? 0ULL - (unsigned long long)s :
				    (unsigned long long)s;
			out_number(o, u, s < 0, 10, false, flags, width, prec);
			continue;
		case 'u':
			base = 10;
			break;
		case 'X':
			upper = true;
			base = 16;
			break;
		case 'x':
			base = 16;
			break;
		case 'o':
			base = 8;
			break;
		case 'p':
			u = (uintptr_t)va_arg(ap, void *);
			out_number(o, u, false, 16, false, flags | F_ALT,
				   width, prec);
			continue;
		case 'c':
			if (!(flags & F_LEFT))
				out_pad(o, ' ', width - 1);
			out_char(o, (char)va_arg(ap, int));
			if (flags & F_LEFT)
				out_pad(o, ' ', width - 1);
			continue;
		case 's': {
			const char *str = va_arg(ap, const char *);
			int n = 0;

			if (!str)
				str = "(null)";
			while (str[n] && (prec < 0 || n < prec))
				n++;
			if (!(flags & F_LEFT))
				out_pad(o, ' ', width - n);
			for (int i = 0; i < n; i++)
				out_char(o, str[i]);
			if (flags & F_LEFT)
				out_pad(o, ' ', width - n);
			continue;
		}
		case '%':
			out_char(o, '%');
			continue;
		case '\0':
			/* A lone '%' at the end: print it, stop. */
			out_char(o, '%');
			return;
		default:
			/* Unknown conversion: show it as written. */
			out_char(o, '%');
			out_char(o, *fmt);
			continue;
		}

		if (lng >= 1)
			u = lng == 1 ? va_arg(ap, unsigned long) :
				       va_arg(ap, unsigned long long);
		else
			u = va_arg(ap, unsigned int);
		if (lng == -1)
			u = (unsigned short)u;
		else if (lng <= -2)
			u = (unsigned char)u;
		out_number(o, u, false, base, upper, flags, width, prec);
	}
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { .buf = buf, .size = size, .len = 0 };

	format(&o, fmt, ap);
	if (buf && size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return (int)o.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

int vprintf(const char *fmt, va_list ap)
{
	char buf[512];
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(buf, sizeof(buf), fmt, ap2);
	va_end(ap2);
	spin_lock(&console_lock);
	if ((size_t)n < sizeof(buf)) {
		console_write(buf, (size_t)n);
	} else {
		/* Too long for the buffer: say so rather than cut silently. */
		console_write(buf, sizeof(buf) - 1);
		console_write("[...]\n", 6);
	}
	spin_unlock(&console_lock);
	return n;
}

int printf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vprintf(fmt, ap);
	va_end(ap);
	return n;
}
