"""Realistic request heads shared by the micro benchmarks and tests.

BROWSER_HEAD is what a desktop browser sends for a page on a site with a
consent banner, analytics and a login: 12 header lines, one Cookie header
holding 5 cookies (the balancer's SRVID and the app's JSESSIONID among them),
about 700 bytes.
"""

AFFINITY_COOKIE = b"SRVID"
APP_COOKIE = b"JSESSIONID"

BROWSER_HEAD = (
    b"GET /shop/cart/items?page=2&sort=price HTTP/1.1\r\n"
    b"Host: shop.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
    b"image/webp,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Referer: https://shop.example.com/shop/cart\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: _ga=GA1.2.1234567890.1700000000; consent=analytics%3Dyes%26ads%3Dno; "
    b"JSESSIONID=8F3A2C1D9E7B6A5F4E3D2C1B0A998877; theme=dark; "
    b"SRVID=s2.1700000000.1700003600.Zk9sT1ZfSE1BQ19TSUdOQVRVUkVfXzAx\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"Sec-Fetch-Dest: document\r\n"
    b"Sec-Fetch-Mode: navigate\r\n"
    b"Priority: u=0, i\r\n"
    b"\r\n"
)
