pub mod autoconfig;
