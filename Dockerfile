# The API as a container image (used by compose.yaml).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin stagepact

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/stagepact stagepact
COPY --from=build /src/target/release/stagepact /usr/local/bin/stagepact
USER stagepact
ENV STAGEPACT_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["stagepact"]
CMD ["serve"]
